// HS256 JWT check for the Node peers, with node's crypto: what omnicast checks on connect.
'use strict';
const crypto = require('crypto');

module.exports = function verifier(secret) {
  return function verify(token) {
    const [h, p, s] = (token || '').split('.');
    if (!s) return false;
    const mac = crypto.createHmac('sha256', secret).update(`${h}.${p}`).digest('base64url');
    if (mac.length !== s.length || !crypto.timingSafeEqual(Buffer.from(mac), Buffer.from(s))) return false;
    const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
    return claims.exp * 1000 > Date.now();
  };
};
