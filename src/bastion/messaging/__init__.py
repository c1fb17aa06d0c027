"""Messaging: WhatsApp messages accepted through a transactional outbox, delivered by an in-process dispatcher
(the embedded default) or through RabbitMQ, with nothing lost and nothing sent twice (docs/messaging.md)."""
