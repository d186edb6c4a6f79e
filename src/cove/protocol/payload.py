"""The version of the JSON inside every ciphertext, shared by the SDK and the business gateway's formats."""

PAYLOAD_VERSION = 1
