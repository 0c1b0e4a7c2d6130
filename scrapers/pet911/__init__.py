"""pet911.ru scraper: detail/catalog parsers, archive, crawl state, polite incremental crawl, photo download."""
