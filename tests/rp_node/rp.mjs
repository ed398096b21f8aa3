// A second, independent relying party for Passgate's tests: npm's openid-client (a certified
// OpenID Connect RP library). Steps, settings in environment variables, JSON on stdout:
//   node rp.mjs start   -> { url, verifier, state, nonce }  (the browser follows `url`)
//   node rp.mjs finish  -> what the library made of the callback (CALLBACK, VERIFIER, ...)
//   node rp.mjs machine -> a client_credentials token for SCOPE, introspected, and refusals
//   node rp.mjs device  -> one line with the device authorization (user_code, ...), then,
//                          once the user approved it and polling got tokens, a second line
// The browser reaches Passgate by its public name (ISSUER); this process reaches the same
// server at LOCAL_URL, so every request the library makes is rewritten to it.
import * as oidc from 'openid-client'

const env = process.env
const SCOPE = 'openid profile email groups offline_access'
const MAX_AGE = 600

const fetchLocally = (url, options) => fetch(String(url).replace(env.ISSUER, env.LOCAL_URL), options)

async function configure () {
  const options = { execute: [oidc.allowInsecureRequests], [oidc.customFetch]: fetchLocally }
  // A public client (a command-line tool using the device flow) authenticates with none.
  const auth = env.CLIENT_SECRET ? oidc.ClientSecretPost(env.CLIENT_SECRET) : oidc.None()
  const config = await oidc.discovery(new URL(env.ISSUER), env.CLIENT_ID, undefined, auth, options)
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
    // A WWW-Authenticate challenge (userinfo) names its error in the challenge's parameters.
    return error.error ?? error.cause?.[0]?.parameters?.error ?? error.code ?? String(error)
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

const config = await configure()
const steps = { start, finish, machine, device }
process.stdout.write(JSON.stringify(await steps[process.argv[2]](config)) + '\n')
