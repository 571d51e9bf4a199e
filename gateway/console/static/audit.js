// The auditor's pages, enhanced. The pages work without JavaScript: the gateway has already
// checked the inclusion proof with its own verifier. Here the browser checks it again,
// itself, with WebCrypto SHA-256: the entry's RFC 6962 leaf hash SHA-256(0x00 || entry),
// then RFC 9162 section 2.1.3.2 from the leaf up the proof to the root in the signed
// checkpoint (the checkpoint's signature is checked by the gateway, not here). A file, not
// an inline script: the Content-Security-Policy allows no inline script.

function bytes (base64) {
  const raw = atob(base64)
  const out = new Uint8Array(raw.length)
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i)
  return out
}

async function sha256 (...parts) {
  const total = parts.reduce((n, p) => n + p.length, 0)
  const joined = new Uint8Array(total)
  let at = 0
  for (const part of parts) { joined.set(part, at); at += part.length }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', joined))
}

const leafHash = (entry) => sha256(Uint8Array.of(0), entry)
const nodeHash = (left, right) => sha256(Uint8Array.of(1), left, right)

function same (a, b) {
  return a.length === b.length && a.every((x, i) => x === b[i])
}

// RFC 9162 2.1.3.2, with BigInt so that any tree size is exact.
export async function rootFromProof (index, size, leaf, proof) {
  if (index >= size) throw new Error(`entry ${index} is not below tree size ${size}`)
  let fn = index
  let sn = size - 1n
  let r = leaf
  for (const p of proof) {
    if (sn === 0n) throw new Error('the proof is longer than the path to the root')
    if ((fn & 1n) === 1n || fn === sn) {
      r = await nodeHash(p, r)
      if ((fn & 1n) === 0n) {
        while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n }
      }
    } else {
      r = await nodeHash(r, p)
    }
    fn >>= 1n
    sn >>= 1n
  }
  if (sn !== 0n) throw new Error('the proof is shorter than the path to the root')
  return r
}

// A C2SP checkpoint's body: origin, size, base64 root hash, one a line.
function signedRoot (note, size) {
  const lines = note.split('\n')
  if (lines.length < 3 || BigInt(lines[1]) !== size) {
    throw new Error('the checkpoint is not of the proof\'s tree size')
  }
  return bytes(lines[2])
}

function show (where, verified, text) {
  const tag = document.createElement('strong')
  tag.className = 'govuk-tag ' + (verified ? 'govuk-tag--green' : 'govuk-tag--red')
  tag.textContent = verified ? 'Verified in your browser' : 'NOT verified in your browser'
  const words = document.createElement('span')
  words.textContent = ' ' + text
  where.replaceChildren(tag, words)
  where.dataset.verified = verified ? 'true' : 'false'
}

async function checkInclusion (element) {
  const result = element.querySelector('[aria-live]')
  try {
    const index = BigInt(element.dataset.index)
    const size = BigInt(element.dataset.size)
    const entry = bytes(element.dataset.entry)
    const proof = (element.dataset.proof || '').split(' ').filter(Boolean).map(bytes)
    const leaf = await leafHash(entry)
    if (!same(leaf, bytes(element.dataset.leafHash))) {
      throw new Error('the entry does not hash to the leaf the proof is for')
    }
    const root = signedRoot(element.dataset.checkpoint, size)
    const calculated = await rootFromProof(index, size, leaf, proof)
    if (!same(calculated, root)) {
      throw new Error('the proof leads to a different root from the signed one')
    }
    show(result, true, `Your browser recomputed the entry's leaf hash and the root of the ` +
      `tree of size ${size} from the proof: it is the signed root.`)
  } catch (error) {
    show(result, false, `${error.message}.`)
  }
}

function addCopyButton (element) {
  const code = element.querySelector('code')
  if (!code || !navigator.clipboard) return
  const button = document.createElement('button')
  button.type = 'button'
  button.className = 'govuk-button govuk-button--secondary govuk-!-margin-bottom-1'
  button.textContent = 'Copy the command'
  const status = document.createElement('p')
  status.className = 'govuk-body-s'
  status.setAttribute('aria-live', 'polite')
  button.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(code.textContent)
      status.textContent = 'Command copied.'
    } catch {
      status.textContent = 'Your browser did not allow copying: select the command instead.'
    }
  })
  element.append(button, status)
}

document.querySelectorAll('[data-module="app-inclusion-check"]').forEach(checkInclusion)
document.querySelectorAll('[data-module="app-copy"]').forEach(addCopyButton)
