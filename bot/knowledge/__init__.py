"""The merchant's FAQ and catalog: import and validation, storage, and hybrid retrieval."""
