//! PROMISE miTNM staging and tumour burden (DESIGN S8).
