<?php
// bench/run's "json" scenario: a JSON API page of ~20 KB built from three
// includes (config, model, helpers), as a small framework-less API would.
$config = require __DIR__ . '/lib/config.php';
require_once __DIR__ . '/lib/Catalog.php';
require_once __DIR__ . '/lib/helpers.php';

$page = isset($_GET['page']) ? max(0, (int) $_GET['page']) : 0;
$catalog = new Catalog($config);
$items = [];
foreach ($catalog->products($page) as $p) {
    $p['price'] = money($p['price_cents'], $config['tax_rate'], $config['currency']);
    $p['href'] = link_for($config['base_url'], $p);
    unset($p['price_cents']);
    $items[] = $p;
}
usort($items, fn($a, $b) => $b['rating'] <=> $a['rating'] ?: $a['id'] <=> $b['id']);
header('Content-Type: application/json');
header('Cache-Control: no-store');
echo json_encode(envelope($items, ['page' => $page, 'count' => count($items),
                                   'generated' => gmdate('c')]), JSON_UNESCAPED_SLASHES);
