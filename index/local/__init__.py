"""The local store: an index folder of FAISS and BM25 segments, named by a manifest."""
