"""`cove app`: the messenger as a page on this machine, for one profile.

The page is a window on a local process that holds the profile's keys and does all the decryption, as a desktop
messenger does; the browser gets rendered HTML, never a key. It reaches the relay only through the SDK
(cove.client), and is reachable only from this machine with the key printed at start (cove.web.guard).
"""
