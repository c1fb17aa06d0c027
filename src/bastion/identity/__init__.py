"""Identity: who is calling and what they may do. Accounts, sessions, API keys, OAuth sign-in, plans."""
