"""The Telegram front end: the same quoted answers in private chats, groups and inline mode.

Nothing here imports python-telegram-bot at package import time, so the `articlebot` CLI
stays quick to start for every other command.
"""
