"""Dataset ingestion, validation, stratified splits and training tensors."""
