"""Where mail comes from: files (``mailflow ingest``), SMTP/LMTP, IMAP.

Every source does the same thing: hand raw bytes to ``Store.accept`` and acknowledge only
after that commit.
"""
