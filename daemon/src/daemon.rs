//! The backend every API router works on.
