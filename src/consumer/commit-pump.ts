/**
 * Commits resolved offsets as soon as they move, without one request per task: while a commit is in flight,
 * further requests coalesce into one follow-up commit. The window in which a finished task is not yet committed
 * (and would run again after a kill -9) is thus about one broker round trip, not a commit interval.
 */
export class CommitPump {
  private inFlight: Promise<void> | undefined;
  private again = false;

  constructor(private readonly onError: (err: unknown) => void) {}

  request(commit: () => Promise<void>): void {
    if (this.inFlight) {
      this.again = true;
      return;
    }
    this.inFlight = (async () => {
      do {
        this.again = false;
        try {
          await commit();
        } catch (err) {
          this.onError(err);
        }
      } while (this.again);
    })().finally(() => (this.inFlight = undefined));
  }

  /** Resolves once no commit is in flight. */
  async idle(): Promise<void> {
    while (this.inFlight) await this.inFlight;
  }
}
