// Workers KV as a spread of locations, for tests: a wrapper around the real KV binding in which
// each write reaches each location after its own delay (the value it replaced, or nothing, is
// read there until then), and each location caches what it read, a value or its absence, for
// the read's cacheTtl (at least 30 s, 60 s by default, as KV does). Time is the test's clock.
// Everything else (the bytes, list, types) is the real binding's.

interface Hidden {
  visibleAt: number;
  before: ArrayBuffer | null;
}

export interface ReadLog {
  at: number;
  key: string;
  /** what the location answered: from the store, from its cache, or the old value of a write not arrived yet */
  source: "store" | "cache" | "not-arrived";
  found: boolean;
}

class Location {
  readonly hidden = new Map<string, Hidden>();
  readonly cache = new Map<string, { value: ArrayBuffer | null; until: number }>();
  readonly log: ReadLog[] = [];

  constructor(
    private readonly real: KVNamespace,
    private readonly now: () => number,
  ) {}

  async read(key: string, cacheTtl: number | undefined): Promise<ArrayBuffer | null> {
    if (cacheTtl !== undefined && !(cacheTtl >= 30)) throw new Error(`Invalid cache_ttl of ${cacheTtl}. Cache TTL must be at least 30.`);
    const now = this.now();
    const cached = this.cache.get(key);
    if (cached && now < cached.until) {
      this.log.push({ at: now, key, source: "cache", found: cached.value !== null });
      return cached.value;
    }
    const hidden = this.hidden.get(key);
    let value: ArrayBuffer | null;
    if (hidden && now < hidden.visibleAt) {
      value = hidden.before;
      this.log.push({ at: now, key, source: "not-arrived", found: value !== null });
    } else {
      value = await this.real.get(key, "arrayBuffer");
      this.log.push({ at: now, key, source: "store", found: value !== null });
    }
    this.cache.set(key, { value, until: now + (cacheTtl ?? 60) * 1000 });
    return value;
  }

  binding(): KVNamespace {
    const get = async (key: string, arg?: string | { type?: string; cacheTtl?: number }) => {
      const type = (typeof arg === "string" ? arg : arg?.type) ?? "text";
      const value = await this.read(key, typeof arg === "object" ? arg.cacheTtl : undefined);
      if (value === null) return null;
      const copy = value.slice(0);
      if (type === "arrayBuffer") return copy;
      if (type === "stream") return new Response(copy).body;
      const text = new TextDecoder().decode(copy);
      return type === "json" ? JSON.parse(text) : text;
    };
    return new Proxy(this.real, {
      get: (target, prop) => {
        if (prop === "get") return get;
        if (prop === "put" || prop === "delete") return () => Promise.reject(new Error("a location's view is read-only: write through PropagatingKv"));
        const value = Reflect.get(target, prop);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
  }
}

export class PropagatingKv {
  private readonly locations = new Map<string, Location>();

  constructor(
    readonly real: KVNamespace,
    readonly now: () => number,
  ) {}

  /** The KV binding as the Worker at location `name` sees it. */
  location(name: string): KVNamespace {
    return this.at(name).binding();
  }

  /** What location `name` read so far. */
  log(name: string): ReadLog[] {
    return this.at(name).log;
  }

  /**
   * Writes `key` to the store now; location L reads the new value from `now + delayMs(L)` on
   * (the value it replaced, or nothing, before that), its cache permitting.
   */
  async put(key: string, value: ArrayBuffer | string, delayMs: (location: string) => number): Promise<void> {
    const before = await this.real.get(key, "arrayBuffer");
    await this.real.put(key, value);
    for (const [name, location] of this.locations) location.hidden.set(key, { visibleAt: this.now() + delayMs(name), before });
  }

  private at(name: string): Location {
    let location = this.locations.get(name);
    if (!location) this.locations.set(name, (location = new Location(this.real, this.now)));
    return location;
  }
}
