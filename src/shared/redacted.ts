/**
 * What stands in for a secret wherever one would be shown: a resolved `{"$secret": …}` in the consumer's results,
 * errors, events and DLQ headers, and a secret-named payload field in taskapi's answers to viewers.
 */
export const REDACTED = '[redacted]';
