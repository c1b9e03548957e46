<?php
// Verify clever-gateway's X-Clever-Assertion in a PHP app with firebase/php-jwt (v6).
//
// UNTESTED: firebase/php-jwt is a Composer package with no Debian package, so the gateway's CI
// cannot install it; the Python example (verify_assertion.py) is the tested one. This follows
// php-jwt's documented API (JWK::parseKeySet, JWT::decode with Key objects); only `php -l`
// has been run on it.
//
//   composer require firebase/php-jwt
//
// Cache the JWKS (APCu, a file) for a few minutes rather than fetching it per request, and
// refetch it when a token names an unknown kid (key rotation).

require __DIR__ . '/vendor/autoload.php';

use Firebase\JWT\JWK;
use Firebase\JWT\JWT;

const GATEWAY_JWKS = 'https://apps.example-district.org/_gateway/jwks.json';
const GATEWAY_ISSUER = 'https://apps.example-district.org';
const APP_AUDIENCE = 'gradebook'; // the upstream's name, or its assertion_audience

/** The verified claims, or null when the assertion is missing or not valid. */
function clever_assertion_claims(): ?stdClass
{
    $token = $_SERVER['HTTP_X_CLEVER_ASSERTION'] ?? '';
    if ($token === '') {
        return null;
    }
    try {
        $jwks = json_decode(file_get_contents(GATEWAY_JWKS), true, 16, JSON_THROW_ON_ERROR);
        JWT::$leeway = 30; // seconds of clock skew
        // parseKeySet builds one ES256 key per kid; decode checks signature, exp, iat and nbf.
        $claims = JWT::decode($token, JWK::parseKeySet($jwks, 'ES256'));
    } catch (Throwable $e) {
        error_log('invalid X-Clever-Assertion: ' . $e->getMessage());
        return null;
    }
    // php-jwt does not check iss and aud: do it here.
    $aud = is_array($claims->aud ?? null) ? $claims->aud : [$claims->aud ?? null];
    if (($claims->iss ?? null) !== GATEWAY_ISSUER || !in_array(APP_AUDIENCE, $aud, true)) {
        return null;
    }
    return $claims;
}

$claims = clever_assertion_claims();
if ($claims === null) {
    http_response_code(401);
    exit('not signed in');
}
header('Content-Type: text/plain');
echo "Clever user {$claims->sub} (" . implode(',', $claims->user_types) . ")\n";
