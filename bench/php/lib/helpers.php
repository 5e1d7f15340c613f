<?php
// View helpers: money formatting, links, a response envelope.
function money(int $cents, float $tax, string $currency): array
{
    $gross = (int) round($cents * (1 + $tax));
    return ['net' => $cents, 'gross' => $gross, 'display' => number_format($gross / 100, 2, '.', ',') . ' ' . $currency];
}

function link_for(string $base, array $product): string
{
    return $base . '/products/' . $product['id'] . '?' . http_build_query(['ref' => 'list', 'cat' => $product['category']]);
}

function envelope(array $items, array $meta): array
{
    return ['meta' => $meta, 'items' => $items, 'status' => 'ok'];
}
