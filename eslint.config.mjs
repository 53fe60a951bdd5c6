// Lint: typescript-eslint's recommended rules plus the house style (two-space indent, single quotes,
// semicolons, trailing commas on multi-line literals, lines up to 150 columns).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  // Build output is not linted: compiled JavaScript and declarations, the handler bundle, and jsii-pacmak's dist/.
  { ignores: ['**/*.js', '**/*.d.ts', 'node_modules/**', 'cdk.out/**', 'assets/**', 'dist/**', '!eslint.config.mjs', 'scripts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      'indent': ['error', 2, { SwitchCase: 1, ignoredNodes: ['TemplateLiteral *'] }],
      'quotes': ['error', 'single', { avoidEscape: true }],
      'semi': ['error', 'always'],
      'comma-dangle': ['error', 'always-multiline'],
      'max-len': ['error', { code: 150, ignoreStrings: true, ignoreTemplateLiterals: true, ignoreRegExpLiterals: true }],
      '@typescript-eslint/no-explicit-any': 'error',
    },
  },
  {
    // Plain CommonJS scripts that tests copy into a consumer app and run with node.
    files: ['**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', process: 'readonly', __dirname: 'readonly', console: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
);
