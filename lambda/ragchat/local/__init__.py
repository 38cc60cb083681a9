"""Local adapters: in-process models and files under one data folder, no AWS account."""
