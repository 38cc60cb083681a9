"""Clients of the chat API: the HTTP client (SigV4 for Function URLs), the REPL and the
signing proxy that lets a browser use a deployed, IAM-authenticated Function URL."""
