/** A binary min-heap ordered by a numeric key; O(log n) push/pop, no allocation per operation. */
export class MinHeap<T> {
  private readonly items: T[] = [];

  constructor(private readonly keyOf: (item: T) => number) {}

  get size(): number {
    return this.items.length;
  }

  peek(): T | undefined {
    return this.items[0];
  }

  push(item: T): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    const k = this.keyOf(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = a[parent] as T;
      if (this.keyOf(p) <= k) break;
      a[i] = p;
      i = parent;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    const k = this.keyOf(last);
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const child = r < a.length && this.keyOf(a[r] as T) < this.keyOf(a[l] as T) ? r : l;
      if (this.keyOf(a[child] as T) >= k) break;
      a[i] = a[child] as T;
      i = child;
    }
    a[i] = last;
    return top;
  }
}
