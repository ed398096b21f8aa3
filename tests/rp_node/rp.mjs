// A second, independent relying party for Passgate's tests: npm's openid-client (a certified
// OpenID Connect RP library). Two steps, settings in environment variables, JSON on stdout:
//   node rp.mjs start   -> { url, verifier, state, nonce }  (the browser follows `url`)
//   node rp.mjs finish  -> what the library made of the callback (CALLBACK, VERIFIER, ...)
// and for pushed requests, signed client authentication and response modes:
//   node rp.mjs start-par -> as start, the request pushed first (buildAuthorizationUrlWithPAR)
//   node rp.mjs exchange  -> the code exchanged, userinfo read, the token introspected
// AUTH picks the client authentication: client_secret_post (default, CLIENT_SECRET),
// private_key_jwt (PRIVATE_JWK, an EC P-256 JWK) or client_secret_jwt (CLIENT_SECRET).
// RESPONSE_MODE asks for one; with form_post, CALLBACK_BODY is what the browser posted.
// The browser reaches Passgate by its public name (ISSUER); this process reaches the same
// server at LOCAL_URL, so every request the library makes is rewritten to it.
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
  return oidc.ClientSecretPost(env.CLIENT_SECRET)
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
    return error.error ?? error.code ?? String(error)
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

const steps = { start, finish, 'start-par': startPar, exchange }
const config = await configure()
process.stdout.write(JSON.stringify(await steps[process.argv[2]](config)))
