"""Billing: Stripe subscriptions that set an account's plan, and webhooks that lose nothing."""
