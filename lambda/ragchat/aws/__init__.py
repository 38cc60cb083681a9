"""AWS adapters: the engine's interfaces on SageMaker, Pinecone, DynamoDB and Comprehend.

Only boto3, the `pinecone` SDK and Powertools are imported here: no model or numeric
library loads in the Lambda."""
