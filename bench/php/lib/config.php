<?php
// bench/php/api.php's settings: what a small API's config file holds.
return [
    'currency' => 'EUR',
    'page_size' => 66,
    'categories' => ['books', 'music', 'garden', 'kitchen', 'tools', 'toys', 'sports', 'office'],
    'tax_rate' => 0.2,
    'base_url' => 'https://shop.example/api/v1',
];
