"""Operations: metrics, structured logs, status, privacy (GDPR), backup and restore."""
