/**
 * Shaka Player integration: a networking scheme plugin for `http:` and `https:`. Manifests
 * (HLS playlists) pass through Shaka's fetch plugin and are shown to the engine; whole
 * segments come from the engine; everything else goes through Shaka's fetch plugin.
 */
import type { P2pMedia } from "./index.js";

/* Minimal shapes of Shaka's networking API (Shaka is not a dependency of this package). */
interface ShakaResponse {
  uri: string;
  originalUri?: string;
  data: ArrayBuffer | ArrayBufferView;
  headers: Record<string, string>;
  status?: number;
  timeMs?: number;
  fromCache?: boolean;
}
interface AbortableOperation<T> {
  promise: Promise<T>;
  abort(): Promise<unknown>;
}
interface ShakaRequest {
  headers: Record<string, string>;
}
type SchemePlugin = (
  uri: string,
  request: ShakaRequest,
  requestType: number,
  progressUpdated: unknown,
  headersReceived: unknown,
  config: unknown,
) => AbortableOperation<ShakaResponse>;

/** The part of the `shaka` namespace this plugin needs. */
export interface ShakaNamespace {
  net: {
    // Method syntax: Shaka's own request type has more fields than this plugin reads.
    HttpFetchPlugin: {
      parse(
        uri: string,
        request: ShakaRequest,
        requestType: number,
        progressUpdated: unknown,
        headersReceived: unknown,
        config: unknown,
      ): AbortableOperation<ShakaResponse>;
    };
    NetworkingEngine: {
      RequestType: { MANIFEST: number; SEGMENT: number };
      PluginPriority: { APPLICATION: number };
      registerScheme(scheme: string, plugin: SchemePlugin, priority?: number): void;
    };
  };
  util: {
    AbortableOperation: new <T>(promise: Promise<T>, onAbort: () => Promise<void>) => AbortableOperation<T>;
    Error: new (severity: number, category: number, code: number, ...data: unknown[]) => Error;
  };
}

/** Shaka's error codes used here (shaka.util.Error): RECOVERABLE, NETWORK, OPERATION_ABORTED / HTTP_ERROR. */
const RECOVERABLE = 1;
const NETWORK = 1;
const OPERATION_ABORTED = 7001;
const HTTP_ERROR = 1002;

/** Routes Shaka's `http:` and `https:` requests through `p2p`. Call `p2p.attachMedia(video)` too. */
export function registerShakaScheme(p2p: P2pMedia, shaka: ShakaNamespace): void {
  const { NetworkingEngine, HttpFetchPlugin } = shaka.net;
  const plugin: SchemePlugin = (uri, request, requestType, progressUpdated, headersReceived, config) => {
    const ranged = Object.keys(request.headers).some((h) => h.toLowerCase() === "range");
    const promise = requestType === NetworkingEngine.RequestType.SEGMENT && !ranged ? p2p.load(uri) : undefined;
    if (promise) {
      let abort: (() => void) | undefined;
      const started = performance.now();
      const response = new Promise<ShakaResponse>((resolve, reject) => {
        abort = () => reject(new shaka.util.Error(RECOVERABLE, NETWORK, OPERATION_ABORTED, uri, requestType));
        promise.then(
          (data) => resolve({ uri, originalUri: uri, data, headers: {}, status: 200, timeMs: performance.now() - started }),
          (error: unknown) => reject(new shaka.util.Error(RECOVERABLE, NETWORK, HTTP_ERROR, uri, String(error))),
        );
      });
      return new shaka.util.AbortableOperation(response, async () => {
        p2p.abandon(uri);
        abort?.();
      });
    }
    const operation = HttpFetchPlugin.parse(uri, request, requestType, progressUpdated, headersReceived, config);
    if (requestType !== NetworkingEngine.RequestType.MANIFEST) return operation;
    const shown = operation.promise.then((response) => {
      p2p.playlist(response.uri, new TextDecoder().decode(response.data));
      return response;
    });
    return new shaka.util.AbortableOperation(shown, async () => {
      await operation.abort();
    });
  };
  for (const scheme of ["http", "https"]) {
    NetworkingEngine.registerScheme(scheme, plugin, NetworkingEngine.PluginPriority.APPLICATION);
  }
}
