// Module resolution hook: 'webrtc-polyfill' resolves to the test double beside this file.
export async function resolve (specifier, context, nextResolve) {
  if (specifier === 'webrtc-polyfill') {
    return { url: new URL('./fake-webrtc.mjs', import.meta.url).href, shortCircuit: true }
  }
  return nextResolve(specifier, context)
}
