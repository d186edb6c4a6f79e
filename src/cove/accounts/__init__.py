"""Accounts: phone-number registration verified by code, devices, bearer tokens, contact discovery."""
