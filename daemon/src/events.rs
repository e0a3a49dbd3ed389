//! Event bus: publish, history for `since`, filtered subscriptions.
