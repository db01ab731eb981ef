// Test double for 'webrtc-polyfill' (which needs the native node-datachannel build that cannot
// be made on this machine). It implements just what simple-peer calls to produce and consume
// SDP, so that the real bittorrent-tracker client sends real offers and answers through the
// tracker. No media or data flows: the interop test checks signaling only.
export const log = { offersCreated: [], answersCreated: [], remoteOffers: [], remoteAnswers: [] }

let counter = 0

function fakeSdp (type) {
  counter += 1
  return `v=0\r\no=- ${process.pid}${counter} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n` +
    `a=group:BUNDLE 0\r\nm=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n` +
    `c=IN IP4 0.0.0.0\r\na=ice-ufrag:fake${counter}\r\na=ice-pwd:${'p'.repeat(22)}\r\n` +
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}\r\na=mid:0\r\na=sctp-port:5000\r\n` +
    `a=x-test-id:${type}-${process.pid}-${counter}\r\n`
}

export class RTCSessionDescription {
  constructor ({ type, sdp }) { this.type = type; this.sdp = sdp }
}

export class RTCIceCandidate {
  constructor (init) { Object.assign(this, init) }
}

export class RTCPeerConnection {
  constructor () {
    this.iceConnectionState = 'new'
    this.iceGatheringState = 'new'
    this.connectionState = 'new'
    this.signalingState = 'stable'
    this.localDescription = null
    this.remoteDescription = null
  }

  createDataChannel (label) {
    return { label, binaryType: 'arraybuffer', readyState: 'connecting', bufferedAmount: 0, close () {} }
  }

  async createOffer () {
    const offer = { type: 'offer', sdp: fakeSdp('offer') }
    log.offersCreated.push(offer.sdp)
    return offer
  }

  async createAnswer () {
    const answer = { type: 'answer', sdp: fakeSdp('answer') }
    log.answersCreated.push(answer.sdp)
    return answer
  }

  async setLocalDescription (description) {
    this.localDescription = new RTCSessionDescription(description)
    setTimeout(() => {
      this.iceGatheringState = 'complete'
      this.onicegatheringstatechange?.()
      this.onicecandidate?.({ candidate: null })
    }, 5)
  }

  async setRemoteDescription (description) {
    this.remoteDescription = description
    ;(description.type === 'offer' ? log.remoteOffers : log.remoteAnswers).push(description.sdp)
  }

  async addIceCandidate () {}
  getStats () { return Promise.resolve(new Map()) }
  getTransceivers () { return [] }
  close () { this.connectionState = 'closed' }
}

export default { RTCPeerConnection, RTCSessionDescription, RTCIceCandidate }
