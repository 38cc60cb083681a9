"""`ragchat preflight`: before a deploy, check in the target account and region what the
deployment needs (quotas, region support, the CDK bootstrap, the Pinecone key) and say how
to fix each failure. Run from the project checkout: it reads cdk.json and the stack's
configuration like `cdk deploy` does."""
