"""Telegram channels: keyword selection, shared normalisation, live capture (Telethon) and Desktop exports."""
