<?php
// A deterministic product catalogue: what a model layer would fetch.
final class Catalog
{
    private array $config;

    public function __construct(array $config)
    {
        $this->config = $config;
    }

    public function products(int $page): array
    {
        $out = [];
        $n = $this->config['page_size'];
        $cats = $this->config['categories'];
        for ($i = 0; $i < $n; $i++) {
            $id = $page * $n + $i + 1;
            $h = crc32("product-$id");
            $out[] = [
                'id' => $id,
                'sku' => sprintf('SKU-%06d-%04X', $id, $h & 0xffff),
                'name' => ucwords(self::words($h, 3)),
                'category' => $cats[$h % count($cats)],
                'price_cents' => 199 + $h % 20000,
                'stock' => $h % 97,
                'rating' => round(1 + ($h % 400) / 100, 2),
                'tags' => explode(' ', self::words($h >> 3, 2 + $h % 3)),
                'created' => gmdate('Y-m-d\TH:i:s\Z', 1600000000 + $h % 100000000),
            ];
        }
        return $out;
    }

    private static function words(int $seed, int $n): string
    {
        static $dict = ['alpha', 'bravo', 'cedar', 'delta', 'ember', 'fjord', 'garnet', 'harbor',
                        'indigo', 'juniper', 'kestrel', 'lumen', 'maple', 'nickel', 'onyx', 'prairie'];
        $w = [];
        for ($k = 0; $k < $n; $k++) {
            $w[] = $dict[($seed >> (4 * $k)) & 15];
        }
        return implode(' ', $w);
    }
}
