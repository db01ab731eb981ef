import { register } from 'node:module'
register('./fake-webrtc-hooks.mjs', import.meta.url)
