#!/bin/bash
# Lambda entry (behind the AWS Lambda Web Adapter layer): serve the chat app on $PORT.
exec python -m uvicorn ragchat.aws.server:app --host 127.0.0.1 --port "${PORT:-8080}" --no-access-log
