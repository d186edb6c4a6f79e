"""End-to-end encrypted attachments: the relay keeps ciphertext blobs it cannot read, uploaded resumably by one
device and fetched by those the sender gave the blob's id and key to, until they all have it or it expires."""
