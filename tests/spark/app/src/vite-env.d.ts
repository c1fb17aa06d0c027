/// <reference types="vite/client" />
declare const BASE_KV_SERVICE_URL: string;
interface Window { spark: any }
