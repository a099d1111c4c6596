"""RotateEncryptionKey: `service.py` switches the active key and starts the re-encryption, which
`worker.py` does in a worker process, a batch per transaction."""
