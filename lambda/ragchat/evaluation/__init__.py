"""`ragchat eval`: retrieval quality on a question file."""
