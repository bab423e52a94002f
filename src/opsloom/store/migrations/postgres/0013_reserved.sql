-- Reserved for the engine's next schema change; it changes nothing by itself.
SELECT 1;
