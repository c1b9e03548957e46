<?php
// whoami.php: who is signed in, from clever-gateway's headers. Serve it where only the gateway
// can reach it (e.g. `php -S 127.0.0.1:9000 whoami.php`, or Apache/nginx bound to loopback).
//
// PHP (like CGI and WSGI) turns header X-Clever-User-Id into $_SERVER['HTTP_X_CLEVER_USER_ID'].
// The gateway removes any such header a client sends (X-Clever-User-Id and X_Clever_User_Id
// alike), so when it is present, the gateway put it there.

// X-Clever-Name / X-Clever-Email: ASCII as it is, anything else as RFC 8187 UTF-8''%XX...
function clever_header(string $name): ?string {
    $v = $_SERVER['HTTP_' . strtoupper(str_replace('-', '_', $name))] ?? null;
    if ($v !== null && str_starts_with($v, "UTF-8''")) {
        $v = rawurldecode(substr($v, 7));
    }
    return $v;
}

$userId = $_SERVER['HTTP_X_CLEVER_USER_ID'] ?? '';
if ($userId === '') {                       // public path, or not through the gateway
    http_response_code(401);
    exit("Not signed in: open this app through clever-gateway.\n");
}
$types = array_filter(explode(',', $_SERVER['HTTP_X_CLEVER_USER_TYPE'] ?? ''));
$district = $_SERVER['HTTP_X_CLEVER_DISTRICT_ID'] ?? null;  // absent for Library logins
$isStaff = (bool) array_intersect($types, ['teacher', 'staff', 'district_admin']);
$name = clever_header('X-Clever-Name') ?? $userId;          // only if the upstream sends it

header('Content-Type: text/html; charset=utf-8');
header('Cache-Control: private, no-store');
$h = fn(?string $s): string => htmlspecialchars($s ?? '', ENT_QUOTES | ENT_SUBSTITUTE, 'UTF-8');
?>
<!doctype html><meta charset="utf-8"><title>whoami</title>
<h1>Hello, <?= $h($name) ?></h1>
<p><?= $isStaff ? 'Staff view' : 'Student view' ?></p>
<p>User <?= $h($userId) ?>, roles <?= $h(implode(', ', $types)) ?>, district <?= $h($district) ?></p>
<form method="post" action="/_gateway/logout"><button>Sign out</button></form>
