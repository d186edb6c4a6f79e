"""The business gateway: a Cove client that a business runs, speaking the WhatsApp Cloud API to the business's
own systems (REST in, signed webhooks out) and end-to-end encrypted Cove messages to its users."""
