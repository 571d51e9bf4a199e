// A real OpenID Provider for the console's sign-in tests: panva's oidc-provider (OpenID
// Certified), from npm (package.json devDependencies).
//
//   node tests/console/oidc_provider.mjs --port 9000 \
//     --redirect-uri http://127.0.0.1:8080/console/sign-in/callback [--client-secret S]
//
// Issuer http://127.0.0.1:<port>; one client, "dipgw-console" (client_secret_basic with
// --client-secret, else a public client), authorization code only, PKCE required. Any
// login name is an account whose subject is that name. Its sign-in page
// (GET /interaction/<uid>) is a plain form with "login" and "amr" (RFC 8176 methods, comma
// separated; "pwd,otp" unless changed) that tests POST without a browser, and a browser
// fills in. The grant for the openid scope is given without a consent page (a first-party
// client). Prints "ready <issuer>" when it listens.

import { parseArgs } from 'node:util';

import Provider from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    'redirect-uri': { type: 'string', multiple: true },
    'client-secret': { type: 'string' },
    'client-id': { type: 'string', default: 'dipgw-console' },
  },
});
const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;
const secret = args['client-secret'];

const provider = new Provider(issuer, {
  clients: [{
    client_id: args['client-id'],
    ...(secret ? { client_secret: secret } : {}),
    token_endpoint_auth_method: secret ? 'client_secret_basic' : 'none',
    redirect_uris: args['redirect-uri'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  pkce: { required: () => true },
  // amr and acr (RFC 8176, OIDC Core 1.0 section 2) go in the ID token.
  claims: { openid: ['sub', 'amr', 'acr'] },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  // Tests only: fixed cookie keys; the provider's development signing keys (RS256).
  cookies: { keys: ['dipgw-tests-only'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  // A first-party client: the openid scope is granted without a consent page.
  async loadExistingGrant(ctx) {
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope('openid');
    await grant.save();
    return grant;
  },
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([A-Za-z0-9_-]+)$/);
  if (!match) {
    await next();
    return;
  }
  if (ctx.method === 'GET') {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    ctx.type = 'html';
    ctx.body = `<!DOCTYPE html><html lang="en"><head><title>Test identity provider</title>
</head><body><main><h1>Test identity provider</h1>
<form method="post" action="/interaction/${escape(details.uid)}">
<label for="login">Login</label> <input id="login" name="login" autocomplete="off">
<label for="amr">Methods</label> <input id="amr" name="amr" value="pwd,otp">
<button type="submit">Sign in</button></form></main></body></html>`;
    return;
  }
  if (ctx.method === 'POST') {
    const chunks = [];
    for await (const chunk of ctx.req) chunks.push(chunk);
    const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
    const login = form.get('login');
    if (!login) ctx.throw(400, 'login required');
    const amr = (form.get('amr') ?? 'pwd,otp').split(',').map((m) => m.trim()).filter(Boolean);
    await provider.interactionFinished(ctx.req, ctx.res, {
      login: { accountId: login, amr, ...(form.get('acr') ? { acr: form.get('acr') } : {}) },
    }, { mergeWithLastSubmission: false });
    return;
  }
  await next();
});

const server = provider.listen(port, '127.0.0.1', () => {
  process.stdout.write(`ready ${issuer}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
