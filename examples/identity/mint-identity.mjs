// How a site's server signs its logged-in user for AgentAssist.identify().
// No library needed: an HS256 JWT made with node:crypto and the site's
// secret (the `secret` of the site in the broker's config).
//
//   AGENT_ASSIST_SECRET=… node mint-identity.mjs u-1001 "Alex Martin" alex@example.com
//
// prints the JSON object to hand to the page, which passes it to identify().
import { createHmac } from "node:crypto";

export function mintIdentity({ userId, name, email, customData }, secret, lifetimeSecs = 3600) {
  const b64 = (value) => Buffer.from(JSON.stringify(value)).toString("base64url");
  // No `site` claim: that claim marks agent tokens, and the broker refuses
  // an identity that carries one.
  const claims = { sub: userId, name, email, exp: Math.floor(Date.now() / 1000) + lifetimeSecs };
  if (customData) claims.custom = customData;
  const unsigned = `${b64({ alg: "HS256", typ: "JWT" })}.${b64(claims)}`;
  const signature = createHmac("sha256", secret).update(unsigned).digest("base64url");
  return { userId, name, email, ...(customData ? { customData } : {}), token: `${unsigned}.${signature}` };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [userId, name, email] = process.argv.slice(2);
  const secret = process.env.AGENT_ASSIST_SECRET;
  if (!userId || !secret) {
    console.error("usage: AGENT_ASSIST_SECRET=… node mint-identity.mjs USER_ID [NAME] [EMAIL]");
    process.exit(2);
  }
  console.log(JSON.stringify(mintIdentity({ userId, name, email }, secret)));
}
