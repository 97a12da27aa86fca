const cache = new Map<string, Intl.DateTimeFormat>();

/**
 * A cached `Intl.DateTimeFormat` showing date and time to the second in `zone` (24 h). Creating one costs far more
 * than using it, and both the cron math and the CLI format many instants per zone.
 */
export function zonedFormatter(
  zone: string,
  locale: 'en-US' | 'sv-SE',
  withZoneName = false,
): Intl.DateTimeFormat {
  const key = `${locale}|${zone}|${withZoneName}`;
  let f = cache.get(key);
  if (!f) {
    f = new Intl.DateTimeFormat(locale, {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
      ...(withZoneName ? { timeZoneName: 'short' } : {}),
    });
    cache.set(key, f);
  }
  return f;
}
