"""Reference PyTorch implementations of the modules opdoc documents (DeepSeek-OCR), built from model.yaml."""
