// A fixed set of KV caches per loaded model. A request holds one for its whole generation;
// when all are taken, requests wait their turn in arrival order.

export class SlotPool<T> {
  private readonly free: T[];
  private readonly waiting: Array<(slot: T) => void> = [];

  constructor(slots: T[]) {
    this.free = [...slots];
  }

  acquire(): Promise<T> {
    const slot = this.free.pop();
    if (slot !== undefined) return Promise.resolve(slot);
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  release(slot: T): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else this.free.push(slot);
  }
}
