/**
 * hls.js integration: a playlist loader that shows every playlist to the engine, and a fragment
 * loader that asks the engine for segments. Anything the engine does not handle (byte-range
 * fragments, init segments, keys, unknown URLs, P2P off) goes through hls.js's default loader.
 */
import type { P2pMedia } from "./index.js";

/* Minimal shapes of hls.js's loader interface (hls.js is not a dependency of this package). */
interface LoaderContext {
  url: string;
  rangeStart?: number;
  rangeEnd?: number;
  responseType?: string;
}
interface LoaderStats {
  aborted: boolean;
  loaded: number;
  total: number;
  retry: number;
  chunkCount: number;
  bwEstimate: number;
  loading: { start: number; first: number; end: number };
  parsing: { start: number; end: number };
  buffering: { start: number; first: number; end: number };
}
interface LoaderResponse {
  url: string;
  data?: string | ArrayBuffer;
  code?: number;
}
interface LoaderCallbacks {
  onSuccess(response: LoaderResponse, stats: LoaderStats, context: LoaderContext, details: unknown): void;
  onError(error: { code: number; text: string }, context: LoaderContext, details: unknown, stats: LoaderStats): void;
  onTimeout?(stats: LoaderStats, context: LoaderContext, details: unknown): void;
  onAbort?(stats: LoaderStats, context: LoaderContext, details: unknown): void;
  onProgress?(...args: unknown[]): void;
}
interface Loader {
  stats: LoaderStats;
  context: LoaderContext | null;
  load(context: LoaderContext, config: unknown, callbacks: LoaderCallbacks): void;
  abort(): void;
  destroy(): void;
}
/* `never`: any hls.js loader constructor fits, whatever its config type. */
type LoaderClass = new (config: never) => Loader;

/** The part of the `Hls` class these loaders need: `Hls.DefaultConfig.loader`. */
export interface HlsClass {
  DefaultConfig: { loader: LoaderClass };
}

/**
 * The loader pair, typed as the `pLoader` and `fLoader` fields of the given hls.js version's own
 * config, so that `new Hls({ ...hlsLoaders(p2p, Hls) })` type-checks against hls.js's types.
 */
export type HlsLoaders<H extends HlsClass> = H["DefaultConfig"] extends { pLoader?: infer P; fLoader?: infer F }
  ? { pLoader: NonNullable<P>; fLoader: NonNullable<F> }
  : never;

function newStats(): LoaderStats {
  return {
    aborted: false, loaded: 0, total: 0, retry: 0, chunkCount: 0, bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

/**
 * `{ pLoader, fLoader }` for `new Hls({ ...hlsLoaders(p2p, Hls) })`. Call `p2p.attachMedia(video)`
 * as well so that the engine knows the playhead.
 */
export function hlsLoaders<H extends HlsClass>(p2p: P2pMedia, Hls: H): HlsLoaders<H> {
  const Default = Hls.DefaultConfig.loader as unknown as new (config: unknown) => Loader;

  class PlaylistLoader implements Loader {
    private readonly inner: Loader;
    constructor(config: unknown) {
      this.inner = new Default(config);
    }
    get stats(): LoaderStats {
      return this.inner.stats;
    }
    get context(): LoaderContext | null {
      return this.inner.context;
    }
    load(context: LoaderContext, config: unknown, callbacks: LoaderCallbacks): void {
      const onSuccess = callbacks.onSuccess;
      const wrapped: LoaderCallbacks = {
        ...callbacks,
        onSuccess(response, stats, ctx, details) {
          if (typeof response.data === "string") p2p.playlist(response.url || context.url, response.data);
          onSuccess(response, stats, ctx, details);
        },
      };
      this.inner.load(context, config, wrapped);
    }
    abort(): void {
      this.inner.abort();
    }
    destroy(): void {
      this.inner.destroy();
    }
  }

  class FragmentLoader implements Loader {
    private readonly config: unknown;
    private inner: Loader | undefined;
    private pending: { url: string; callbacks: LoaderCallbacks } | undefined;
    stats: LoaderStats = newStats();
    context: LoaderContext | null = null;

    constructor(config: unknown) {
      this.config = config;
    }

    load(context: LoaderContext, config: unknown, callbacks: LoaderCallbacks): void {
      this.context = context;
      // As hls.js's own loaders: a byte range is requested only when `rangeEnd` is set.
      const whole = !context.rangeEnd;
      const promise = whole ? p2p.load(context.url) : undefined;
      if (!promise) {
        this.pending = undefined;
        this.inner ??= new Default(this.config);
        this.inner.load(context, config, callbacks);
        this.stats = this.inner.stats;
        return;
      }
      const stats = (this.stats = newStats());
      stats.loading.start = performance.now();
      const pending = (this.pending = { url: context.url, callbacks });
      promise.then(
        (data) => {
          if (this.pending !== pending) return;
          this.pending = undefined;
          // Report the CDN-equivalent time, so that fast peer deliveries do not push ABR up.
          const now = performance.now();
          const estimate = p2p.bandwidthEstimate() ?? 0;
          const cdnMs = estimate > 0 ? (data.byteLength * 8 * 1000) / estimate : 0;
          stats.loading.first = Math.max(stats.loading.start, now - cdnMs);
          stats.loading.end = Math.max(now, stats.loading.start + cdnMs);
          stats.loaded = stats.total = data.byteLength;
          stats.chunkCount = 1;
          const buffer = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer;
          callbacks.onSuccess({ url: context.url, data: buffer }, stats, context, null);
        },
        (error: unknown) => {
          if (this.pending !== pending) return;
          this.pending = undefined;
          callbacks.onError({ code: 0, text: String(error) }, context, null, stats);
        },
      );
    }

    abort(): void {
      const pending = this.pending;
      if (pending) {
        this.pending = undefined;
        this.stats.aborted = true;
        p2p.abandon(pending.url);
        if (this.context) pending.callbacks.onAbort?.(this.stats, this.context, null);
      } else {
        this.inner?.abort();
      }
    }

    destroy(): void {
      // As hls.js's own loaders: no callbacks after destroy.
      if (this.pending) p2p.abandon(this.pending.url);
      this.pending = undefined;
      this.inner?.destroy();
      this.inner = undefined;
    }
  }

  return { pLoader: PlaylistLoader, fLoader: FragmentLoader } as unknown as HlsLoaders<H>;
}
