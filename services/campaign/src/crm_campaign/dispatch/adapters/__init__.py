"""Channel adapters: what hands a dispatch to a channel, behind one interface (`base.ChannelAdapter`).

- `file.FileAdapter`: JSON lines per channel in a directory, for batch hand-off to a bank's
  SMS or e-mail platform; dedupes by dispatch id across restarts.
- `webhook.WebhookAdapter`: an HMAC-signed POST per message to a provider's endpoint, with a
  timeout and retries (exponential backoff with full jitter); the dispatch id is the
  provider's idempotency key.
"""
