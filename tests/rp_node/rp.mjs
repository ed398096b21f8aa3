// A second, independent relying party for Passgate's tests: npm's openid-client (a certified
// OpenID Connect RP library). Steps, settings in environment variables, JSON on stdout:
//   node rp.mjs start   -> { url, verifier, state, nonce }  (the browser follows `url`)
//   node rp.mjs finish  -> what the library made of the callback (CALLBACK, VERIFIER, ...)
//   node rp.mjs machine -> a client_credentials token for SCOPE, introspected, and refusals
//   node rp.mjs device  -> one line with the device authorization (user_code, ...), then,
//                          once the user approved it and polling got tokens, a second line
//   node rp.mjs dpop    -> the same callback redeemed with DPoP (RFC 9449): userinfo, refresh
//   node rp.mjs jwt     -> the callback redeemed for a JWT access token (RESOURCE, optional),
//                          verified offline against the JWKS by `jose`; then a refresh
// and for pushed requests, signed client authentication and response modes:
//   node rp.mjs start-par -> as start, the request pushed first (buildAuthorizationUrlWithPAR)
//   node rp.mjs exchange  -> the code exchanged, userinfo read, the token introspected
// AUTH picks the client authentication: client_secret_post (default, CLIENT_SECRET),
// private_key_jwt (PRIVATE_JWK, an EC P-256 JWK) or client_secret_jwt (CLIENT_SECRET).
// RESPONSE_MODE asks for one; with form_post, CALLBACK_BODY is what the browser posted.
// The browser reaches Passgate by its public name (ISSUER); this process reaches the same
// server at LOCAL_URL, so every request the library makes is rewritten to it.
import * as jose from 'jose'
import * as oidc from 'openid-client'

const env = process.env
const SCOPE = 'openid profile email groups offline_access'
const MAX_AGE = 600

const fetchLocally = (url, options) => fetch(String(url).replace(env.ISSUER, env.LOCAL_URL), options)

async function clientAuth () {
  if (env.AUTH === 'private_key_jwt') {
    const jwk = JSON.parse(env.PRIVATE_JWK)
    const key = await crypto.subtle.importKey(
      'jwk', jwk, { name: 'ECDSA', namedCurve: 'P-256' }, false, ['sign']
    )
    return oidc.PrivateKeyJwt({ key, kid: jwk.kid })
  }
  if (env.AUTH === 'client_secret_jwt') return oidc.ClientSecretJwt(env.CLIENT_SECRET)
  // A public client (a command-line tool using the device flow) authenticates with none.
  return env.CLIENT_SECRET ? oidc.ClientSecretPost(env.CLIENT_SECRET) : oidc.None()
}

async function configure () {
  const options = { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: fetchLocally }
  const config = await oidc.discovery(
    new URL(env.ISSUER), env.CLIENT_ID, undefined, await clientAuth(), options
  )
  config[oidc.customFetch] = fetchLocally
  // Check ID token signatures against the published JWKS, not only the claims.
  oidc.enableNonRepudiationChecks(config)
  return config
}

async function start (config) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const url = oidc.buildAuthorizationUrl(config, {
    redirect_uri: env.REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    max_age: String(MAX_AGE)
  })
  return { url: url.href, verifier, state, nonce }
}

async function errorOf (promise) {
  try {
    await promise
    return 'accepted'
  } catch (error) {
    // A refusal in a WWW-Authenticate challenge (RFC 6750, RFC 9449) names its error there.
    const challenged = error.cause?.[0]?.parameters?.error
    return error.error ?? challenged ?? error.code ?? String(error)
  }
}

async function finish (config) {
  const tokens = await oidc.authorizationCodeGrant(config, new URL(env.CALLBACK), {
    pkceCodeVerifier: env.VERIFIER,
    expectedState: env.STATE,
    expectedNonce: env.NONCE,
    maxAge: MAX_AGE,
    idTokenExpected: true
  })
  const claims = tokens.claims()
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token)
  const introspection = await oidc.tokenIntrospection(config, refreshed.access_token)
  await oidc.tokenRevocation(config, refreshed.access_token)
  const afterRevocation = await oidc.tokenIntrospection(config, refreshed.access_token)
  const reusedRefresh = await errorOf(oidc.refreshTokenGrant(config, tokens.refresh_token))
  const replayedCode = await errorOf(oidc.authorizationCodeGrant(config, new URL(env.CALLBACK), {
    pkceCodeVerifier: env.VERIFIER, expectedState: env.STATE, expectedNonce: env.NONCE
  }))
  const logout = oidc.buildEndSessionUrl(config, {
    id_token_hint: tokens.id_token, post_logout_redirect_uri: env.LOGOUT_URI, state: 'bye'
  })
  return {
    claims,
    userinfo,
    rotated: refreshed.refresh_token !== tokens.refresh_token,
    introspection,
    afterRevocation,
    reusedRefresh,
    replayedCode,
    logout: logout.href
  }
}

// machine and TV grants

async function machine (config) {
  const tokens = await oidc.clientCredentialsGrant(config, { scope: env.SCOPE })
  const introspection = await oidc.tokenIntrospection(config, tokens.access_token)
  const userinfo = await errorOf(oidc.fetchUserInfo(config, tokens.access_token, env.CLIENT_ID))
  const notAllowed = await errorOf(oidc.clientCredentialsGrant(config, { scope: 'admin:all' }))
  return { tokens, introspection, userinfo, notAllowed }
}

async function device (config) {
  const authorization = await oidc.initiateDeviceAuthorization(config, { scope: env.SCOPE })
  process.stdout.write(JSON.stringify(authorization) + '\n')
  const tokens = await oidc.pollDeviceAuthorizationGrant(config, authorization)
  const claims = tokens.claims()
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
  const reused = await errorOf(oidc.pollDeviceAuthorizationGrant(config, authorization))
  return { tokens, claims, userinfo, reused }
}

function codeChecks () {
  return {
    pkceCodeVerifier: env.VERIFIER,
    expectedState: env.STATE,
    expectedNonce: env.NONCE,
    maxAge: MAX_AGE,
    idTokenExpected: true
  }
}

// A DPoP key pair of the library's choosing (ES256), one handle for every request that uses it.
async function dpop (config) {
  const handle = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair())
  const tokens = await oidc.authorizationCodeGrant(
    config, new URL(env.CALLBACK), codeChecks(), undefined, { DPoP: handle }
  )
  const claims = tokens.claims()
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub, { DPoP: handle })
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP: handle })
  const introspection = await oidc.tokenIntrospection(config, refreshed.access_token)
  // Another key than the token's: the library's own proof, refused by Passgate.
  const stranger = oidc.getDPoPHandle(config, await oidc.randomDPoPKeyPair())
  const wrongKey = await errorOf(
    oidc.fetchUserInfo(config, refreshed.access_token, claims.sub, { DPoP: stranger })
  )
  return {
    tokenType: tokens.token_type,
    claims,
    userinfo,
    refreshedTokenType: refreshed.token_type,
    refreshedClaims: refreshed.claims(),
    introspection,
    wrongKey
  }
}

async function jwt (config) {
  const parameters = env.RESOURCE ? { resource: env.RESOURCE } : undefined
  const tokens = await oidc.authorizationCodeGrant(config, new URL(env.CALLBACK), codeChecks(), parameters)
  const jwks = jose.createRemoteJWKSet(new URL(config.serverMetadata().jwks_uri), {
    [jose.customFetch]: fetchLocally
  })
  const verified = await jose.jwtVerify(tokens.access_token, jwks, {
    issuer: env.ISSUER,
    audience: env.RESOURCE || env.CLIENT_ID,
    typ: 'at+jwt',
    algorithms: ['RS256']
  })
  const refreshed = await oidc.refreshTokenGrant(config, tokens.refresh_token)
  const idToken = tokens.claims()
  return {
    header: verified.protectedHeader,
    payload: verified.payload,
    idToken,
    refreshedIdToken: refreshed.claims(),
    refreshedAccessTokenAudience: jose.decodeJwt(refreshed.access_token).aud
  }
}

async function startPar (config) {
  const verifier = oidc.randomPKCECodeVerifier()
  const state = oidc.randomState()
  const nonce = oidc.randomNonce()
  const parameters = {
    redirect_uri: env.REDIRECT_URI,
    scope: SCOPE,
    code_challenge: await oidc.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce
  }
  if (env.RESPONSE_MODE) parameters.response_mode = env.RESPONSE_MODE
  const url = await oidc.buildAuthorizationUrlWithPAR(config, parameters)
  return { url: url.href, verifier, state, nonce }
}

async function exchange (config) {
  // A form_post answer arrives as the POST the browser made to the callback.
  const callback = env.RESPONSE_MODE === 'form_post'
    ? new Request(env.CALLBACK, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: env.CALLBACK_BODY
    })
    : new URL(env.CALLBACK)
  const tokens = await oidc.authorizationCodeGrant(config, callback, {
    pkceCodeVerifier: env.VERIFIER,
    expectedState: env.STATE,
    expectedNonce: env.NONCE,
    idTokenExpected: true
  })
  const claims = tokens.claims()
  const userinfo = await oidc.fetchUserInfo(config, tokens.access_token, claims.sub)
  const introspection = await oidc.tokenIntrospection(config, tokens.access_token)
  return { claims, userinfo, introspection }
}

const STEPS = { start, finish, machine, device, dpop, jwt, 'start-par': startPar, exchange }
const config = await configure()
const step = STEPS[process.argv[2]] ?? finish
process.stdout.write(JSON.stringify(await step(config)) + '\n')
