/**
 * Lets every promise chain, in-memory fetch and batched send run to where it waits for the (fake) clock or for
 * something the test does next: a few turns of the event loop, never a wall-clock wait.
 */
export async function settle(turns = 40): Promise<void> {
  for (let i = 0; i < turns; i++) await new Promise((r) => setImmediate(r));
}
