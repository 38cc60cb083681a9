"""Loading a knowledge base into the vector index (local FAISS or Pinecone): read sources,
chunk them by the embedding model's tokens, embed in batches, upsert under stable ids."""
