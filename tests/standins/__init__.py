"""Local stand-ins that speak the real wire contracts of the services the Lambda calls:
the SageMaker runtime (with event-stream framing), Pinecone's control and data planes,
and Amazon Comprehend. Each records the requests it received, so tests assert on them."""
